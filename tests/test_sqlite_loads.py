"""SQLite: a table that starts empty is loaded through one prepared INSERT,
each row's parameters built by one expression compiled for the table
(dbtools/backends/sqlite_loads.py). Each parameter must be what the batches'
plain INSERT sends (what Django's get_db_prep_save() gives), and the backup's text
kept as it is must be what its decoded value would have been sent as."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal

import pytest
from django.apps import apps
from django.db import connections

from dbtools.archive.codec import JSONText, decoder_for, kind_of
from dbtools.backends import backend_for, sqlite_loads
from dbtools.backup import backup_database
from dbtools.exceptions import RestoreError
from dbtools.restore import prepare_restore, restore_database
from tests.conftest import backends
from tests.helpers import comparable_tables, database_contents, rewrite_backup

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

UTC = datetime.UTC
TIMESTAMP_TEXTS = [
    "2025-01-02T03:04:05.123456+00:00",
    "2025-01-02T03:04:05+00:00",
    "2025-01-02T03:04:05.000000+00:00",  # str() of the datetime drops the fraction
    "2024-02-29T00:00:00+00:00",
    "2023-02-29T00:00:00+00:00",  # no such day: refused when decoded
    "2025-04-31T00:00:00+00:00",
    "2025-12-31T23:59:59.999999+00:00",
    "2025-01-02T03:04:05.123456+01:00",
    "2025-01-02T03:04:05.12+00:00",
    "2025-01-02 03:04:05+00:00",
]
DECIMAL_TEXTS = [
    "12.50",
    "-0.00",
    "0",
    "007",
    "1E+2",
    "0.000001",
    "0.0000001",  # str() of its Decimal is 1E-7
    "0.0000000",
    "123456789012345",
    "1234567890123456",  # more significant digits than SQLite keeps
    "1000000000000000000000000000001",  # more than Decimal's 28 digits
    "1.000000000000000000000000000001",
    "1" + "0" * 400,  # one significant digit, beyond a float
    "0.1000000000000000",
    "-123456.7890123456",
    "NaN",
]
UUID_TEXTS = [
    "12345678-1234-5678-1234-567812345678",
    "00000000-0000-0000-0000-000000000000",
    "12345678-1234-5678-1234-56781234567A",
    "12345678123456781234567812345678",
    "{12345678-1234-5678-1234-567812345678}",
]
SAMPLES: dict[str, list[object]] = {
    "int": [1, -5, 2**63 - 1, -(2**63), True, "7"],
    "bool": [True, False, 1, 0],
    "str": ["", "N", "a\tb\nc\r\\", "é 😀", "\x00", 7, "127.0.0.1", "::1", "::ffff:1.2.3.4"],
    "uuid": [uuid.UUID("12345678-1234-5678-1234-567812345678"), *UUID_TEXTS],
    "date": [datetime.date(1000, 1, 1), "2025-01-02"],
    "time": [datetime.time(0, 0), datetime.time(23, 59, 59, 999999)],
    "datetime": [
        datetime.datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        *TIMESTAMP_TEXTS,
    ],
    "decimal": [
        Decimal("12345678901234.5"),
        Decimal("-0.0000000001"),
        Decimal(7),
        "12.5",
        Decimal("1" + "0" * 30 + "1"),  # normalize() would round it to 28 digits
        Decimal("1E+400"),
        Decimal("1E-400"),
        Decimal("-1E+307"),
    ],
    "float": [0.1, -0.0, 1e300, 5e-324],
    "duration": [datetime.timedelta(days=-1, microseconds=1), datetime.timedelta(0)],
    "binary": [b"", bytes(range(256))],
    "json": [JSONText('{"a": [1, 2.5, null, "x\\n{"]}'), {"b": 1}, [1, "\t"], "text"],
}


def every_field():
    for app in ("shop", "edgecases"):
        for model in apps.get_app_config(app).get_models():
            for field in model._meta.concrete_fields:
                if kind_of(field) in SAMPLES:
                    yield field


def bound(value: object) -> object:
    """A parameter as sqlite3 binds it: Django registers str() for Decimal."""
    return str(value) if type(value) is Decimal else value


def outcome(make, *args) -> object:
    try:
        return make(*args)
    except Exception as exc:
        return type(exc)


def reference(field, value, connection) -> object:
    """The parameter Django's insert compiler sends (with raw=True), or its
    error; a decimal SQLite cannot hold exactly is refused (ValueError) by
    the load."""

    def prepare() -> object:
        if type(value) is Decimal and sqlite_loads.inexact_for(value, field):
            raise ValueError(value)  # as the batches' check refuses it (restore/rows.py)
        if type(value) is JSONText:  # the insert compiler's JSONText is its text
            return value.text
        return bound(field.get_db_prep_save(value, connection=connection))

    return outcome(prepare)


def loaded(field, value, connection, text_tested=False) -> object:
    prepare = sqlite_loads.row_preparer([field], connection, text_tested)
    return outcome(lambda: bound(prepare(value)[0]))


@backends("sqlite")
def test_every_value_is_sent_as_the_insert_would_send_it(alias):
    connection = connections[alias]
    checked = 0
    for field in every_field():
        for value in [None, *SAMPLES[kind_of(field)]]:
            assert loaded(field, value, connection) == reference(field, value, connection), (
                field,
                value,
            )
            checked += 1
    assert checked > 400


@backends("sqlite")
@pytest.mark.parametrize(
    "kind, texts", [("datetime", TIMESTAMP_TEXTS), ("decimal", DECIMAL_TEXTS), ("uuid", UUID_TEXTS)]
)
def test_text_kept_as_it_is_is_sent_as_its_decoded_value(alias, kind, texts):
    """The decoder keeps a text where kept_as_text's test passes: the load
    must then send what it would have sent for the decoded value. A text the
    test refuses is decoded (and may be refused as a bad value)."""
    connection = connections[alias]
    decode = decoder_for(kind)
    fields = [f for f in every_field() if kind_of(f) == kind]
    tests = backend_for(connection).load_kept_as_text(fields)
    assert tests is not None and all(tests)  # the shop's and edge cases' fields are Django's own
    kept = set()
    for field, test in zip(fields, tests, strict=True):
        for text in texts:
            if not test(text):
                continue
            kept.add(text)
            decoded = decode(text)  # a text kept is one the decoder reads
            sent = reference(field, decoded, connection)
            assert loaded(field, text, connection) == sent, (field, text)
            # Tested by the decoder, the text is not tested again.
            assert loaded(field, text, connection, text_tested=True) == sent, (field, text)
    assert 2 <= len(kept) < len(texts)


def test_what_the_kept_texts_tests_refuse():
    assert not sqlite_loads.sent_timestamp_text("2025-01-02T03:04:05.000000+00:00")
    assert not sqlite_loads.sent_timestamp_text("2023-02-29T00:00:00+00:00")
    assert not sqlite_loads.sent_timestamp_text("2025-04-31T00:00:00+00:00")
    assert sqlite_loads.sent_timestamp_text("2024-02-29T00:00:00+00:00")
    assert not sqlite_loads.exact_decimal_text("0.0000001")
    assert not sqlite_loads.exact_decimal_text("1234567890123456")
    assert not sqlite_loads.exact_decimal_text("007")
    assert sqlite_loads.exact_decimal_text("123456789012345")
    assert sqlite_loads.exact_decimal_text("0.1000000000000000")


@backends("sqlite")
def test_a_rows_parameters_are_each_value_as_its_column_sends_it(alias):
    connection = connections[alias]
    fields = list(every_field())
    values = [SAMPLES[kind_of(f)][0] for f in fields]
    one_by_one = tuple(
        sqlite_loads.row_preparer([f], connection)(v)[0]
        for f, v in zip(fields, values, strict=True)
    )
    assert sqlite_loads.row_preparer(fields, connection)(*values) == one_by_one
    assert len(one_by_one) > 100


@backends("sqlite")
def test_a_row_of_no_columns_has_no_parameters(alias):
    assert sqlite_loads.row_preparer([], connections[alias])() == ()


@backends("sqlite")
@pytest.mark.parametrize(
    "column, text, refusal",
    [
        ("created_at", "2023-02-29T10:00:00+00:00", "column created_at holds"),
        ("subtotal", "1234567890123456", "more than 15 significant digits"),
        # More places than the field's two, a tie: SQLite would give 0.12 back.
        ("subtotal", "0.125", "would read back as 0.12, not 0.13"),
    ],
)
def test_a_value_sqlite_would_keep_wrongly_fails_the_restore_naming_its_row(
    alias, backup_dir, column, text, refusal
):
    from shop.seed import seed_shop

    seed_shop(300, using=alias)
    backup = backup_database(using=alias).path
    first: list[object] = []

    def change(label, row):
        if label == "shop.Order" and not first:
            first.append(row["id"])
            return {**row, column: text}
        return row

    broken = rewrite_backup(backup, backup.with_name("broken.json"), change_row=change)
    before = comparable_tables(database_contents(alias))

    with pytest.raises(RestoreError) as caught:
        restore_database(prepare_restore(broken, using=alias), mode="replace")

    assert "shop.Order" in str(caught.value) and refusal in str(caught.value), caught.value
    assert str(first[0]) in str(caught.value)
    assert comparable_tables(database_contents(alias)) == before


def test_the_digits_of_a_decimal_are_counted_as_they_are():
    assert (
        sqlite_loads.inexact(Decimal("1" + "0" * 30 + "1")) == "has more than 15 significant digits"
    )
    assert sqlite_loads.inexact(Decimal("1.000000000000000000000000000001"))
    assert sqlite_loads.inexact(Decimal("1E+400")) and sqlite_loads.inexact(Decimal("1E-400"))
    assert sqlite_loads.inexact(Decimal("123456789012345E+292")) is None
    assert sqlite_loads.inexact(Decimal("1.500000000000000000000000000000")) is None
    assert sqlite_loads.inexact(Decimal("0E+500")) is None  # zero is kept exactly
    assert not sqlite_loads.exact_decimal_text("1" + "0" * 400)


@backends("sqlite")
def test_a_default_that_is_not_a_decimal_passes_sqlites_decimal_check(alias):
    """A NOT NULL column's default (an int, say) fills a backup's NULL: the
    check for decimals SQLite cannot keep leaves it to Django."""
    from dbtools.restore.rows import RowPipeline
    from shop.models import Order

    field = Order._meta.get_field("subtotal")
    pipeline = RowPipeline(None, connections[alias], {})  # type: ignore[arg-type]
    check = pipeline.decimal_check("shop.Order", field)
    assert check(0, {"id": 1}) == 0
    with pytest.raises(RestoreError, match="outside the range of a float"):
        check(Decimal("1E+400"), {"id": 1})


@backends("sqlite")
def test_a_subclass_of_a_kept_field_gets_its_values_decoded(alias):
    """Only a field Django's own class prepares has its backup text kept: a
    subclass's preparation may expect the decoded value."""
    from django.db import models

    class Cents(models.DecimalField):
        pass

    class Stamp(models.DateTimeField):
        pass

    class Key(models.UUIDField):
        pass

    connection = connections[alias]
    plain = [
        models.DecimalField(max_digits=10, decimal_places=2),
        models.DateTimeField(),
        models.UUIDField(),
    ]
    subclassed = [Cents(max_digits=10, decimal_places=2), Stamp(), Key()]
    for field in [*plain, *subclassed]:
        field.set_attributes_from_name("x")
    kept = backend_for(connection).load_kept_as_text([*plain, *subclassed])
    assert kept is not None
    assert all(test is not None for test in kept[:3])
    assert kept[3:] == [None, None, None]


@backends("sqlite")
@pytest.mark.django_db(transaction=True, databases="__all__")
def test_only_rows_going_in_as_decoded_skip_the_kept_texts_test(alias, backup_dir, monkeypatch):
    """text_tested holds where the decoder's test is the only way a text
    reaches the load; a --set (rows prepared, not as they are) never skips it."""
    from tests.helpers import without_column

    e = apps.get_app_config("edgecases").models_module
    e.UniqueEmail.objects.using(alias).create(id=7, email="a@example.com", nickname="n")
    backup = backup_database(using=alias, only=["edgecases.UniqueEmail"]).path
    older = without_column(backup, "nickname")
    backend_class = type(backend_for(connections[alias]))
    original = backend_class.load_stream
    seen: list[bool] = []

    def load_stream(self, db_table, fields, text_tested=False):
        seen.append(text_tested)
        return original(self, db_table, fields, text_tested)

    monkeypatch.setattr(backend_class, "load_stream", load_stream)
    for path, given in [(backup, []), (older, ["edgecases.UniqueEmail.nickname=x"])]:
        e.UniqueEmail.objects.using(alias).all().delete()
        plan = prepare_restore(path, using=alias, set_values=given)
        restore_database(plan, mode="merge")
    assert seen == [True, False]
    assert e.UniqueEmail.objects.using(alias).get().nickname == "x"
