"""MariaDB: a table that starts empty is loaded by LOAD DATA LOCAL INFILE through a
named pipe (dbtools/backends/mysql_loads.py). Each value must be written as the
plain INSERT would send it; a load the server took only in part, or with a
warning, is undone and the table loaded again by INSERTs; the pipe's folder
never outlives the load."""

from __future__ import annotations

import datetime
import os
import tempfile
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from django.apps import apps
from django.db import DatabaseError, connections, transaction

from dbtools.archive.codec import JSONText, kind_of
from dbtools.backends import backend_for, mysql_loads
from dbtools.backup import backup_database
from dbtools.exceptions import RestoreError
from dbtools.restore import prepare_restore, restore_database
from dbtools.restore.strategies import CopyStream
from shop.seed import seed_shop
from tests.conftest import backends
from tests.data import fill_edge_cases
from tests.edgecases import models as e
from tests.helpers import comparable_tables, database_contents, rewrite_backup

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

UTC = datetime.UTC
SAMPLES: dict[str, list[object]] = {
    "int": [1, -5, 2**63 - 1, -(2**63)],
    "bool": [True, False],
    "str": ["", "N", "\\N", "NULL", "a\tb\nc\r\\", "é 😀", "\x00"],
    "uuid": [
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        uuid.uuid4(),
        str(uuid.uuid4()),  # the backup's text, kept as it is
        "12345678-1234-5678-1234-56781234567A",
        "12345678123456781234567812345678",
    ],
    "date": [datetime.date(1000, 1, 1), datetime.date(9999, 12, 31)],
    "time": [datetime.time(0, 0), datetime.time(23, 59, 59, 999999)],
    "datetime": [
        datetime.datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        "2025-01-02T03:04:05.123456+00:00",  # the backup's text, kept as it is
        "2025-01-02T03:04:05+00:00",
        "2025-01-02T03:04:05.123456+01:00",
        "2025-01-02T03:04:05.12+00:00",
    ],
    "decimal": [
        Decimal("12345678901234567890.1234567890"),
        Decimal("-0.0000000001"),
        Decimal(7),
        "12.50",  # the backup's text, kept as it is
        "-0.0000000001",
        "-0",
        "0.5",
        "1E+2",
        "007",
    ],
    "float": [0.1, -0.0, 1e300, 5e-324, 123456789.123456789],
    "duration": [datetime.timedelta(days=-1, microseconds=1), datetime.timedelta(0)],
    "binary": [b"", bytes(range(256))],
    "json": [JSONText('{"a": [1, 2.5, null, "x\\n{"]}'), {"b": 1}, [1, "\t"], "text", None],
}


def every_field():
    for app in ("shop", "edgecases"):
        for model in apps.get_app_config(app).get_models():
            for field in model._meta.concrete_fields:
                if kind_of(field) in SAMPLES:
                    yield field


def reference(field, value, connection) -> str | type[Exception]:
    """What the plain INSERT's preparation gives, written by as_text()."""
    try:
        if value is None:
            return mysql_loads.NULL
        if type(value) is JSONText:
            return mysql_loads.as_text(value.text)
        return mysql_loads.as_text(field.get_db_prep_save(value, connection=connection))
    except (ValueError, TypeError) as exc:
        return type(exc)


def written(field, value, connection) -> str | type[Exception]:
    try:
        return mysql_loads.text_writer(field, connection)(value)
    except (ValueError, TypeError) as exc:
        return type(exc)


@backends("mariadb")
def test_every_value_is_written_as_the_insert_would_send_it(alias):
    connection = connections[alias]
    # Every kind whose backup text can be kept is among the samples.
    fields = list(every_field())
    kept = mysql_loads.kept_as_text(fields, connection)
    assert {kind_of(f) for f, test in zip(fields, kept, strict=True) if test} == {
        "decimal",
        "datetime",
        "uuid",
    }
    checked = 0
    with backend_for(connection).loading_session():
        for field in every_field():
            for value in [None, *SAMPLES[kind_of(field)]]:
                assert written(field, value, connection) == reference(field, value, connection), (
                    field,
                    value,
                )
                checked += 1
    assert checked > 500


def outcome(write, value) -> str | type[Exception]:
    try:
        return write(value)
    except Exception as exc:
        return type(exc)


@backends("mariadb")
def test_a_rows_line_is_each_value_as_its_column_writes_it(alias):
    """The compiled line writes a value in line only where its column's own
    writer would give the same text; values of another type than the
    column's take the writer's way (and fail as it fails)."""
    connection = connections[alias]
    checked = 0
    with backend_for(connection).loading_session():
        for field in every_field():
            write = mysql_loads.text_writer(field, connection)
            line = mysql_loads.line_writer([field, field], connection)
            for value in [None, *SAMPLES[kind_of(field)], 0, 7, -3, "plain", "a\tb\\", True]:
                one = outcome(write, value)
                both = one if isinstance(one, type) else f"{one}\t{one}"
                assert outcome(line, [value, value]) == both, (field, value)
                checked += 1
    assert checked > 500


@backends("mariadb")
def test_a_line_of_tested_text_is_the_line_of_the_same_text_untested(alias):
    """With text_tested, a text the decoder kept (its column's kept test
    passed) is not tested again: every value the decoder can hand over is
    written as without it."""
    connection = connections[alias]
    fields = list(every_field())
    tests = mysql_loads.kept_as_text(fields, connection)
    trusted = 0
    with backend_for(connection).loading_session():
        for field, test in zip(fields, tests, strict=True):
            untested = mysql_loads.line_writer([field], connection)
            tested = mysql_loads.line_writer([field], connection, text_tested=True)
            for value in [None, *SAMPLES[kind_of(field)], 0, 7, "plain", "a\tb"]:
                if type(value) is str and test is not None:
                    if not test(value):
                        continue  # decoded, never handed over as text
                    trusted += 1
                assert outcome(tested, [value]) == outcome(untested, [value]), (field, value)
    assert trusted >= 3


@backends("mariadb")
def test_a_row_of_no_columns_is_an_empty_line(alias):
    assert mysql_loads.line_writer([], connections[alias])([]) == ""


@backends("mariadb")
def test_text_is_escaped_for_load_data():
    assert mysql_loads.as_text("a\tb\nc\rd\\e\x00") == "a\\tb\\nc\\rd\\\\e\\0"
    assert mysql_loads.as_text("\\N") == "\\\\N"
    assert mysql_loads.as_text(None) == "\\N"
    assert mysql_loads.as_text(b"\x00\t") == "0009"
    with pytest.raises(ValueError):
        mysql_loads.as_text(float("nan"))
    with pytest.raises(TypeError):
        mysql_loads.as_text(object())


def spy_on_stream(monkeypatch) -> list[str]:
    streamed: list[str] = []
    original = CopyStream.stream

    def stream(self, load, rows):
        original(self, load, rows)
        streamed.append(load.table.label)

    monkeypatch.setattr(CopyStream, "stream", stream)
    return streamed


@backends("mariadb")
def test_a_replace_loads_every_table_by_load_data_and_leaves_no_folder(
    alias, backup_dir, monkeypatch
):
    seed_shop(300, using=alias)
    fill_edge_cases(alias)
    before = comparable_tables(database_contents(alias))
    backup = backup_database(using=alias).path
    streamed = spy_on_stream(monkeypatch)
    folders = set(
        Path(tempfile.gettempdir()).glob(f"{mysql_loads.LOAD_FOLDER_PREFIX}{os.getpid()}-*")
    )

    restore_database(prepare_restore(backup, using=alias), mode="replace")

    assert {"shop.Product", "shop.OrderItem", "edgecases.AllTypes"} <= set(streamed)
    assert comparable_tables(database_contents(alias)) == before
    after = set(
        Path(tempfile.gettempdir()).glob(f"{mysql_loads.LOAD_FOLDER_PREFIX}{os.getpid()}-*")
    )
    assert after == folders


UNIQUE_EMAIL = ("id", "email", "nickname")


def unique_email_load(alias):
    fields = [e.UniqueEmail._meta.get_field(name) for name in UNIQUE_EMAIL]
    return mysql_loads.load_stream(e.UniqueEmail._meta.db_table, fields, connections[alias], False)


@backends("mariadb")
def test_a_load_the_server_takes_with_a_warning_is_refused_and_undone(alias):
    """LOCAL makes a too long value a warning, and cuts the value: refused."""
    refused = r"LOAD DATA stored 1 of the 1 rows sent to edgecases_uniqueemail, with 1 warnings"
    with (
        transaction.atomic(using=alias),
        backend_for(connections[alias]).loading_session(),
        pytest.raises(DatabaseError, match=refused),
        transaction.atomic(using=alias),
        unique_email_load(alias) as write,
    ):
        write([1, "a@example.com", "x" * 500])
    assert not e.UniqueEmail.objects.using(alias).exists()


@backends("mariadb")
def test_a_duplicate_key_the_server_skips_is_refused(alias):
    with (
        transaction.atomic(using=alias),
        backend_for(connections[alias]).loading_session(),
        pytest.raises(DatabaseError, match=r"LOAD DATA stored 1 of the 2 rows sent"),
        unique_email_load(alias) as write,
    ):
        write([1, "a@example.com", "a"])
        write([2, "a@example.com", "b"])


@backends("mariadb")
def test_an_error_while_writing_ends_the_load_and_is_raised(alias):
    with (
        transaction.atomic(using=alias),
        pytest.raises(ZeroDivisionError),
        unique_email_load(alias) as write,
    ):
        write([1, "a@example.com", "a"])
        raise ZeroDivisionError
    # The statement has ended (the row, never sent, is not there) and the
    # connection is free again.
    assert not e.UniqueEmail.objects.using(alias).exists()


@backends("mariadb")
def test_a_server_that_refuses_local_files_gets_inserts(alias, backup_dir, monkeypatch):
    seed_shop(100, using=alias)
    before = comparable_tables(database_contents(alias))
    backup = backup_database(using=alias).path
    monkeypatch.setattr(mysql_loads, "loads_local_files", lambda connection: False)
    backend_for(connections[alias]).loads_local_files = None
    streamed = spy_on_stream(monkeypatch)
    try:
        restore_database(prepare_restore(backup, using=alias), mode="replace")
    finally:
        backend_for(connections[alias]).loads_local_files = None
    assert streamed == []
    assert comparable_tables(database_contents(alias)) == before


@backends("mariadb")
def test_an_orphan_row_fails_the_restore_and_changes_nothing(alias, backup_dir, monkeypatch):
    """Foreign keys are set aside for the load (foreign_key_checks = 0 for the whole
    restore) and checked afterwards, one anti-join per constraint."""
    fill_edge_cases(alias)
    # A comment points at a content type an edgecases backup does not hold.
    e.Comment.objects.using(alias).all().delete()
    backup = backup_database(using=alias, only=["edgecases"]).path
    before = comparable_tables(database_contents(alias))
    book = e.Book.objects.using(alias).first()
    assert book is not None
    broken = rewrite_backup(
        backup,
        backup.with_name("orphan.json"),
        change_row=lambda label, row: (
            {**row, "author": 424242} if label == "edgecases.Book" and row["id"] == book.pk else row
        ),
    )
    streamed = spy_on_stream(monkeypatch)
    with pytest.raises(
        RestoreError, match=r"foreign key points at a row that does not exist: .*424242"
    ):
        restore_database(prepare_restore(broken, using=alias), mode="replace")
    assert "edgecases.Book" in streamed
    assert comparable_tables(database_contents(alias)) == before


def test_a_killed_loads_folder_is_removed_by_the_next_command(backup_dir):
    from io import StringIO

    from django.core.management import call_command

    dead = Path(tempfile.gettempdir()) / f"{mysql_loads.LOAD_FOLDER_PREFIX}999999999-abc"
    dead.mkdir()
    os.mkfifo(dead / "rows", 0o600)
    try:
        err = StringIO()
        call_command("listbackups", stdout=StringIO(), stderr=err)
        assert not dead.exists()
        assert f"{mysql_loads.LOAD_FOLDER_PREFIX}999999999-abc" in err.getvalue()
    finally:
        if dead.exists():
            (dead / "rows").unlink()
            dead.rmdir()


@backends("mariadb")
@pytest.mark.parametrize(
    ("clash", "expected"),
    [
        ({"id": 1}, r"primary key 1: .*Duplicate entry '1'"),  # the same primary key twice
        ({"email": "a@example.com"}, r"primary key 2: .*Duplicate entry 'a@example.com'"),
    ],
    ids=["primary key", "unique email"],
)
def test_a_backup_clashing_with_itself_fails_and_changes_nothing(
    alias, backup_dir, monkeypatch, clash, expected
):
    """Into an empty table a duplicate can only come from the backup itself."""
    for number in (1, 2, 3):
        e.UniqueEmail.objects.using(alias).create(
            id=number, email=f"{'abc'[number - 1]}@example.com", nickname=str(number)
        )
    backup = backup_database(using=alias, only=["edgecases.UniqueEmail"]).path
    broken = rewrite_backup(
        backup,
        backup.with_name("clash.json"),
        change_row=lambda label, row: {**row, **clash} if row["id"] == 2 else row,
    )
    before = comparable_tables(database_contents(alias))
    e.UniqueEmail.objects.using(alias).all().delete()
    tried = []
    original = mysql_loads.load_stream

    def load_stream(db_table, *args):
        tried.append(db_table)
        return original(db_table, *args)

    monkeypatch.setattr(mysql_loads, "load_stream", load_stream)

    with pytest.raises(RestoreError, match=expected):
        restore_database(
            prepare_restore(broken, using=alias, only=["edgecases.UniqueEmail"]), mode="merge"
        )
    assert tried == ["edgecases_uniqueemail"]
    assert not e.UniqueEmail.objects.using(alias).exists()
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT @@SESSION.unique_checks, @@SESSION.foreign_key_checks")
        assert cursor.fetchone() == (1, 1)
    restore_database(prepare_restore(backup, using=alias), mode="replace")
    assert comparable_tables(database_contents(alias)) == before


def emptied_after_backup(alias, model, pk, change):
    """A backup of `model`'s table with the row `pk` edited by hand; the table
    is then emptied, so that a restore loads it by LOAD DATA."""
    label = model._meta.label
    backup = backup_database(using=alias, only=[label]).path
    broken = rewrite_backup(
        backup,
        backup.with_name("edited.json"),
        change_row=lambda label, row: {**row, **change} if row["id"] == pk else row,
    )
    model.objects.using(alias).all().delete()
    return broken


@backends("mariadb")
@pytest.mark.parametrize("mode", ["merge", "replace"])
def test_a_duplicate_in_a_long_unique_fails_the_restore_and_changes_nothing(
    alias, backup_dir, mode
):
    """MariaDB keeps a unique value past 768 characters as a hash (a long
    unique); with unique_checks off, a bulk load into an empty table stored a
    duplicate there without a warning."""
    from tests.difflab.models import Link

    Link.objects.using(alias).bulk_create(
        Link(id=number, url=f"https://example.com/{number}", title=str(number))
        for number in range(1, 3001)
    )
    broken = emptied_after_backup(alias, Link, 2000, {"url": "https://example.com/1"})

    with pytest.raises(RestoreError, match=r"primary key 2000: .*Duplicate entry"):
        restore_database(prepare_restore(broken, using=alias, only=["difflab.Link"]), mode=mode)
    assert not Link.objects.using(alias).exists()


@backends("mariadb")
def test_a_zero_month_or_day_fails_the_restore_and_changes_nothing(alias, backup_dir):
    """The backup's UTC text is kept as it is; MariaDB's strict mode alone
    stores 2025-00-00 (read back as None) where the batches refuse it."""
    stamp = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    e.AllTypes.objects.using(alias).bulk_create(
        e.AllTypes(id=number, date_time=stamp) for number in (1, 2, 3)
    )
    broken = emptied_after_backup(alias, e.AllTypes, 2, {"date_time": "2025-00-00T00:00:00+00:00"})

    with pytest.raises(RestoreError, match=r"primary key 2\b"):
        restore_database(
            prepare_restore(broken, using=alias, only=["edgecases.AllTypes"]), mode="merge"
        )
    assert not e.AllTypes.objects.using(alias).exists()


@pytest.mark.parametrize(
    "text",
    [
        "2025-00-01T00:00:00+00:00",
        "2025-13-01T00:00:00+00:00",
        "2025-01-00T00:00:00+00:00",
        "2025-01-32T00:00:00+00:00",
    ],
)
def test_a_month_or_day_out_of_range_is_not_kept_as_text(text):
    assert not mysql_loads.UTC_TIMESTAMP.fullmatch(text)
    assert mysql_loads.UTC_TIMESTAMP.fullmatch("2025-12-31T23:59:59+00:00")


@backends("mariadb")
@pytest.mark.parametrize("stamp", ["2025-00-00 00:00:00", "0000-00-00 00:00:00"])
def test_the_loading_session_refuses_a_zero_month_day_or_date(alias, stamp):
    """Should other text reach the server as it is, strict mode alone would store it."""
    table = e.AllTypes._meta.db_table
    with (
        transaction.atomic(using=alias),
        backend_for(connections[alias]).loading_session(),
        connections[alias].cursor() as cursor,
        pytest.raises(DatabaseError, match="Incorrect datetime value"),
    ):
        cursor.execute(f"INSERT INTO {table} (id, date_time) VALUES (1, %s)", [stamp])
