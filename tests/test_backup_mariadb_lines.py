"""MariaDB/MySQL's server-written row lines (backends/mysql_reads.py) against
the portable path's, byte for byte: the same data backed up through both, on
generated and on hand-written rows."""

from __future__ import annotations

import datetime
import re
from decimal import Decimal

import orjson
from django.db import connections
from hypothesis import given

from dbtools.backends import backend_for, mysql_reads
from dbtools.backup import backup_database
from dbtools.graph import plan_tables
from shop.seed import seed_shop
from tests.conftest import backends
from tests.data import fill_edge_cases
from tests.edgecases import models as e
from tests.test_backup import row_lines
from tests.test_properties import PROPERTY_SETTINGS, all_types_rows


def both_paths(alias, monkeypatch, only=()):
    """The row lines of a backup by the server's path, then by the portable one."""
    fast = row_lines(backup_database(using=alias, only=list(only)).path)
    with monkeypatch.context() as patched:
        patched.setattr(mysql_reads, "can_write", lambda table, connection: False)
        portable = row_lines(backup_database(using=alias, only=list(only)).path)
    return fast, portable


def by_hand(alias, sql, params=()):
    with connections[alias].cursor() as cursor:
        cursor.execute("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")  # lets zero dates in
        try:
            cursor.execute(sql, list(params))
        finally:
            cursor.execute("SET SESSION sql_mode = DEFAULT")


def server_writes(alias, label):
    table = next(t for t in plan_tables(alias).tables if t.label == label)
    return backend_for(connections[alias]).can_write_rows(table)


@backends("mariadb")
def test_the_server_writes_the_shop_and_the_edge_cases(alias):
    connection = connections[alias]
    tables = plan_tables(alias).tables
    left = {t.label for t in tables if not backend_for(connection).can_write_rows(t)}
    assert left == set()


@backends("mariadb")
def test_server_lines_are_the_portable_paths_byte_for_byte(alias, backup_dir, monkeypatch):
    fill_edge_cases(alias)
    seed_shop(300, using=alias)
    fast, portable = both_paths(alias, monkeypatch)
    assert sum(len(lines) for lines in fast.values()) > 500
    assert fast == portable


@backends("mariadb")
def test_generated_rows_are_written_as_the_portable_path_writes_them(
    alias, backup_dir, monkeypatch
):
    @PROPERTY_SETTINGS
    @given(rows=all_types_rows("mysql"))
    def same_lines(rows):
        e.AllTypes.objects.using(alias).all().delete()
        for row in rows:
            e.AllTypes.objects.using(alias).create(**row)
        fast, portable = both_paths(alias, monkeypatch, ["edgecases.AllTypes"])
        assert fast == portable

    assert server_writes(alias, "edgecases.AllTypes")
    same_lines()


AWKWARD_TEXT = [
    "".join(chr(c) for c in range(32)) + '"\\\x7f\u2028\u2029\ufeff🚀',
    "\x0b\x1f",  # JSON_QUOTE escapes these in upper case: read again
    "\\u000B \\u001f literally",
    "plain",
]
AWKWARD_DECIMALS = [
    "0",
    "0.0000001200",
    "-0.0000000001",
    "0.000001",
    "-0.0000009999",
    "99999999999999999999.9999999999",
]


def read_again(monkeypatch):
    """The primary keys of the rows the server's path leaves to the portable one."""
    from dbtools.backup import rows

    keys: list[object] = []
    python_batches = rows.python_batches

    def watched(table, connection, key_chunks=None, change=None):
        if key_chunks is not None:
            key_chunks = list(key_chunks)
            keys.extend(k for chunk in key_chunks for k in chunk)
        return python_batches(table, connection, key_chunks, change)

    monkeypatch.setattr(rows, "python_batches", watched)
    return keys


@backends("mariadb")
def test_hand_written_values_are_written_as_django_reads_them(alias, backup_dir, monkeypatch):
    plain = [
        e.AllTypes.objects.using(alias).create(
            char="plain",
            text=text,
            decimal=Decimal(number),
            float=value,
            time=datetime.time(0, 0, 0, 1),
            date=datetime.date(1, 1, 1),
            date_time=datetime.datetime(1, 1, 1, tzinfo=datetime.UTC),
            binary=b"\x00" * size,
            json={"a": "é"},
            generic_ip="10.0.0.1  ",  # char(39): the server drops trailing spaces
        )
        for text, number, value, size in zip(
            ["", "trailing spaces   ", "\x00\n\t", "🚀", "", ""],
            AWKWARD_DECIMALS,
            [-0.0, 1e-7, 1e16, 5e-324, 1.7976931348623157e308, 0.1],
            [0, 1, 57, 58, 300, 2],
            strict=True,
        )
    ]
    by_hand(alias, "UPDATE edgecases_alltypes SET boolean = 2 WHERE id = %s", [plain[0].pk])
    by_hand(alias, "UPDATE edgecases_alltypes SET json = ' null\t' WHERE id = %s", [plain[1].pk])
    others = [e.AllTypes.objects.using(alias).create(char=text) for text in AWKWARD_TEXT]
    changes = [
        "date_time = '0000-00-00 00:00:00'",
        "date = '2025-02-30', date_time = '2025-02-30 01:02:03'",
        "json = '\n{\"a\":\r\n 1}'",
        "json = '{\"a\": \"\\\\u001F\"}', time = '23:59:59.999999'",
    ]
    for change in changes:
        row = e.AllTypes.objects.using(alias).create()
        others.append(row)
        by_hand(alias, f"UPDATE edgecases_alltypes SET {change} WHERE id = %s", [row.pk])
    by_hand(
        alias, "INSERT INTO edgecases_jsondocument (required, optional) VALUES ('null', 'null')"
    )
    e.JSONDocument.objects.using(alias).create(required={"a": "é"}, optional=[None])
    keys = read_again(monkeypatch)
    fast, portable = both_paths(
        alias, monkeypatch, ["edgecases.AllTypes", "edgecases.JSONDocument"]
    )
    assert fast == portable
    # The last of AWKWARD_TEXT holds no escape JSON_QUOTE writes in upper case.
    assert sorted(keys) == sorted(r.pk for r in others if r.char != AWKWARD_TEXT[-1])
    assert b'"$json_null":["required","optional"]' in b"".join(fast["edgecases.JSONDocument"])
    assert b'"decimal":"1.200E-7"' in b"".join(fast["edgecases.AllTypes"])


@backends("mariadb")
def test_uuids_stored_as_text_are_written_as_django_reads_them(alias, backup_dir, monkeypatch):
    """A database migrated before MariaDB had a UUID type keeps char(32)."""
    rows = [e.AllTypes.objects.using(alias).create() for _ in range(4)]
    by_hand(alias, "ALTER TABLE edgecases_alltypes MODIFY uuid char(32) NULL")
    try:
        for row, text in zip(
            rows,
            ["12345678123456781234567812345678", "ABCDEF0123456789ABCDEF0123456789"],
            strict=False,
        ):
            by_hand(alias, "UPDATE edgecases_alltypes SET uuid = %s WHERE id = %s", [text, row.pk])
        assert server_writes(alias, "edgecases.AllTypes")
        fast, portable = both_paths(alias, monkeypatch, ["edgecases.AllTypes"])
    finally:
        by_hand(alias, "UPDATE edgecases_alltypes SET uuid = NULL")
        by_hand(alias, "ALTER TABLE edgecases_alltypes MODIFY uuid uuid NULL")
    assert fast == portable


@backends("mariadb")
def test_columns_the_server_cannot_write_exactly_leave_the_table_to_python(alias):
    by_hand(alias, "ALTER TABLE edgecases_tag MODIFY name varchar(30) CHARACTER SET latin1")
    try:
        assert not server_writes(alias, "edgecases.Tag")
    finally:
        by_hand(alias, "ALTER TABLE edgecases_tag MODIFY name varchar(30) CHARACTER SET utf8mb4")
    assert server_writes(alias, "edgecases.Tag")


@backends("mariadb")
def test_naive_datetimes_without_use_tz(alias, backup_dir, monkeypatch, settings):
    settings.USE_TZ = False
    connections[alias].__dict__.pop("timezone_name", None)
    try:
        e.AllTypes.objects.using(alias).create(date_time=datetime.datetime(2025, 1, 2, 3, 4, 5))
        e.AllTypes.objects.using(alias).create(date_time=datetime.datetime(2025, 1, 2, 3, 4, 5, 6))
        assert server_writes(alias, "edgecases.AllTypes")
        fast, portable = both_paths(alias, monkeypatch, ["edgecases.AllTypes"])
    finally:
        connections[alias].__dict__.pop("timezone_name", None)
    assert fast == portable
    assert b'"date_time":"2025-01-02T03:04:05.000006"' in b"".join(fast["edgecases.AllTypes"])


@backends("mariadb")
def test_a_server_quoting_otherwise_leaves_every_table_to_python(alias, monkeypatch):
    connection = connections[alias]
    assert mysql_reads.quotes_as_orjson(connection)
    # As if JSON_QUOTE's upper-case escapes were a difference nothing sets aside.
    monkeypatch.setattr(mysql_reads, "UPPER_CASE_ESCAPE", re.compile(rb"(?!)"))
    assert not mysql_reads.quotes_as_orjson(connection)


@backends("mariadb")
def test_a_reader_stopped_early_leaves_the_connection_usable(alias):
    """The next page is asked for before the last is handed on: stopping in
    between must read it, or the connection would be out of sync."""
    for n in range(5):
        e.Tag.objects.using(alias).create(name=f"tag {n}")
    table = next(t for t in plan_tables(alias).tables if t.label == "edgecases.Tag")
    connection = connections[alias]
    batches = backend_for(connection).write_row_batches(table, 2)
    assert [orjson.loads(line)["name"] for line in next(batches)] == ["tag 0", "tag 1"]
    batches.close()
    assert e.Tag.objects.using(alias).count() == 5
    lines = [
        line for batch in backend_for(connection).write_row_batches(table, 2) for line in batch
    ]
    assert len(lines) == 5


@backends("mariadb")
def test_pages_follow_each_other_on_single_and_composite_keys(alias):
    from dbtools.backup.rows import python_batches
    from shop import models as m

    seed_shop(300, using=alias)
    expires = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    m.VerificationToken.objects.using(alias).bulk_create(
        m.VerificationToken(identifier=f"who{n % 3}", token=f"t{n:02}", expires=expires)
        for n in range(30)
    )
    connection = connections[alias]
    backend = backend_for(connection)
    labels = ("shop.VerificationToken", "shop.Product", "shop.Order")
    for table in (t for t in plan_tables(alias).tables if t.label in labels):
        assert backend.can_write_rows(table)
        paged = [line for batch in backend.write_row_batches(table, 2) for line in batch]
        portable = [line for batch in python_batches(table, connection) for line in batch]
        assert len(paged) > 4 and paged == portable, table.label


@backends("mariadb")
def test_decimals_follow_the_columns_places_not_the_fields(alias, backup_dir, monkeypatch):
    for number in AWKWARD_DECIMALS[:3]:
        e.AllTypes.objects.using(alias).create(decimal=Decimal(number))
    by_hand(alias, "ALTER TABLE edgecases_alltypes MODIFY `decimal` numeric(30, 4) NULL")
    try:
        fast, portable = both_paths(alias, monkeypatch, ["edgecases.AllTypes"])
    finally:
        by_hand(alias, "ALTER TABLE edgecases_alltypes MODIFY `decimal` numeric(30, 10) NULL")
    assert fast == portable
    assert b'"decimal":"0.0000"' in b"".join(fast["edgecases.AllTypes"])
