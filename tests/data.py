"""Rows that break naive backup tools, written to whichever backend is asked."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal

from django.contrib.contenttypes.models import ContentType
from django.db import connections

from tests.edgecases import models as e

UTC = datetime.UTC


def awkward_text(alias: str) -> str:
    text = 'Zoë ✓ 🚀 "quoted" back\\slash\nline two\r\n{"not": "a row"}\n,{also not}'
    if connections[alias].vendor != "postgresql":
        text += "\x00nul"  # PostgreSQL text cannot hold NUL
    return text


def float_extremes(alias: str) -> list[float]:
    vendor = connections[alias].vendor
    values = [0.1, -0.0, 1e308, 5e-324, 2.0**53 + 1]
    if vendor != "mysql":  # MariaDB refuses infinities and NaN
        values += [float("inf"), float("-inf")]
    if vendor == "postgresql":  # SQLite turns NaN into NULL
        values.append(float("nan"))
    return values


def fill_all_types(alias: str) -> None:
    common = {
        "big_integer": -(2**63),
        "binary": bytes(range(256)),
        "boolean": True,
        "char": awkward_text(alias)[:100],
        "date": datetime.date(1999, 12, 31),
        "date_time": datetime.datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        "decimal": Decimal("12345678901234567890.1234567890"),
        "duration": datetime.timedelta(days=-1, microseconds=1),
        "email": "ada@example.com",
        "file": "uploads/ä b.txt",
        "file_path": "/tmp/x",
        "generic_ip": "2001:db8::1",
        "integer": -(2**31),
        "json": {
            "b": 1,
            "a": [1, 2.5, None, True, "x\n{"],
            "big": 2**70,
            "nested": {"z": {"y": []}},
        },
        "positive_big_integer": 2**63 - 1,
        "positive_integer": 2**31 - 1,
        "positive_small_integer": 32767,
        "slug": "a-slug",
        "small_integer": -32768,
        "text": awkward_text(alias),
        "time": datetime.time(23, 59, 59, 999999),
        "url": "https://example.com/?q=1&r=ü",
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    }
    for value in float_extremes(alias):
        e.AllTypes.objects.using(alias).create(float=value, **common)
    e.AllTypes.objects.using(alias).create(
        json=["list", "at", "top"], decimal=Decimal("-0.0000000001")
    )
    e.AllTypes.objects.using(alias).create(
        json="just a string", duration=datetime.timedelta(days=99999)
    )
    e.AllTypes.objects.using(alias).create()  # every column NULL


def fill_edge_cases(alias: str) -> None:
    """One of every shape in the edge-case app."""
    db = alias
    fill_all_types(alias)
    e.Place.objects.using(db).create(name="Just a place")
    e.Restaurant.objects.using(db).create(name="Pizzeria", serves_pizza=True)
    e.ItalianRestaurant.objects.using(db).create(
        name="Trattoria", serves_pizza=True, has_wood_oven=False
    )

    author = e.Author.objects.using(db).create(name="Ursula")
    book = e.Book.objects.using(db).create(title="The Dispossessed", author=author)
    author.favourite_book = book
    author.save(using=db)

    root = e.Node.objects.using(db).create(label="root")
    child = e.Node.objects.using(db).create(label="child", parent=root)
    # A row pointing at a later row: only a deferred or disabled check loads it.
    root.parent = child
    root.save(using=db)
    e.Node.objects.using(db).create(label="orphan-free")

    tags = [e.Tag.objects.using(db).create(name=n) for n in ("red", "green", "blue")]
    first = e.Article.objects.using(db).create(title="First")
    second = e.Article.objects.using(db).create(title="Second")
    first.tags.set(tags[:2])
    second.tags.set(tags[1:])
    first.related.add(second)

    article_type = ContentType.objects.db_manager(db).get_for_model(e.Article)
    e.Comment.objects.using(db).create(content_type=article_type, object_id=first.pk, body="Nice")
    e.Comment.objects.using(db).create(
        content_type=ContentType.objects.db_manager(db).get_for_model(e.Book),
        object_id=book.pk,
        body="Classic",
    )

    e.Rectangle.objects.using(db).create(width=3, height=4)
    e.SmallAutoThing.objects.using(db).create(name="small")
    note = e.TimestampedNote.objects.using(db).create(text="old note")
    long_ago = datetime.datetime(2001, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)
    e.TimestampedNote.objects.using(db).filter(pk=note.pk).update(
        created=long_ago, modified=long_ago
    )
    e.UniqueEmail.objects.using(db).create(email="a@example.com", nickname="a")
    e.DeferrableUnique.objects.using(db).create(code="X1")
    if connections[db].vendor == "postgresql":
        fill_postgres_types(db)


def fill_postgres_types(alias: str) -> None:
    from django.db.backends.postgresql.psycopg_any import DateRange, DateTimeTZRange, NumericRange

    from tests.pgonly.models import PostgresTypes

    PostgresTypes.objects.using(alias).create(
        tags=["a", "b,c", 'd"e', ""],
        matrix=[[1, 2], [3, 4]],
        int_range=NumericRange(1, 10),
        big_range=NumericRange(-(2**62), None),
        decimal_range=NumericRange(Decimal("1.50"), Decimal("2.25"), "[]"),
        datetime_range=DateTimeTZRange(
            datetime.datetime(2025, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
            datetime.datetime(2025, 2, 1, tzinfo=UTC),
        ),
        date_range=DateRange(datetime.date(2025, 1, 1), datetime.date(2025, 1, 31)),
    )
    PostgresTypes.objects.using(alias).create(tags=[], int_range=NumericRange(empty=True))
