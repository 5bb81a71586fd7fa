"""backupdb on SQLite reads DecimalFields as the driver's float or int and
writes what Django's converter would have made of it (text_reads.raw_readers)."""

from __future__ import annotations

import decimal
import os
import re
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from django.db import connections, models
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbtools.backup import backup_database
from dbtools.exceptions import BackupError
from dbtools.graph import plan_tables
from dbtools.restore.text_reads import raw_readers, sqlite_decimal_reader
from shop import models as m
from shop.seed import seed_shop
from tests.conftest import backends
from tests.test_backup import row_lines, write_by_hand

# (max_digits, decimal_places): the shop's money, and the edges of what the
# fast path takes (no places, six places, fewer digits than a float has).
SHAPES = [(12, 2), (5, 2), (3, 0), (1, 0), (6, 6), (15, 6), (30, 6)]
AWKWARD = [
    0,
    1,
    -1,
    10**12,
    -(10**13),
    2**53 + 1,
    2**63 - 1,
    0.0,
    -0.0,
    12.3,
    -12.3,
    12.35,
    12.345,  # more places than the field: Django rounds
    2.675,  # a tie in decimal, not in binary
    0.125,
    -12.005,
    0.1 + 0.2,  # 17 significant digits
    9999999999.99,
    99999999999.99,
    123456789012345.0,  # 15 digits
    1234567890123456.0,  # 16: Django rounds to 15
    1e15,
    1e16,  # repr with an exponent
    1e22,
    1e-7,
    5e-324,  # subnormal
    float("inf"),
    float("-inf"),
    float("nan"),
    "12.5",  # text SQLite kept as written
    "abc",
]
EXAMPLES = int(os.environ.get("DBTOOLS_HYPOTHESIS_EXAMPLES", "12")) * 25


def field(max_digits: int, places: int) -> models.DecimalField[Any, Any]:
    return models.DecimalField(max_digits=max_digits, decimal_places=places)


def outcome(convert: Callable[[Any], Any], value: Any) -> tuple[str, str | None]:
    try:
        return ("value", str(convert(value)))
    except (ArithmeticError, ValueError, TypeError):
        return ("error", None)


def django_reads(target: models.DecimalField[Any, Any], alias: str) -> Callable[[Any], Any]:
    from django.db.models.expressions import Col

    connection = connections[alias]
    column = Col("t", target)
    converter = connection.ops.get_decimalfield_converter(column)  # type: ignore[attr-defined]
    return lambda value: converter(value, column, connection)


@backends("sqlite")
@pytest.mark.parametrize("shape", SHAPES)
def test_awkward_values_come_out_as_djangos_converter_makes_them(alias, shape):
    target = field(*shape)
    read = sqlite_decimal_reader(target, connections[alias])
    django = django_reads(target, alias)
    for value in AWKWARD:
        assert outcome(read, value) == outcome(django, value), (shape, value)


@backends("sqlite")
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=os.environ.get("CI") == "true",
)
@given(
    shape=st.sampled_from(SHAPES),
    value=st.one_of(
        st.floats(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        # Prices as a shop stores them, which take the fast path.
        st.decimals(min_value=-(10**11), max_value=10**11, places=2).map(float),
        st.decimals(min_value=-(10**9), max_value=10**9, places=6).map(float),
    ),
)
def test_generated_values_come_out_as_djangos_converter_makes_them(alias, shape, value):
    target = field(*shape)
    read = sqlite_decimal_reader(target, connections[alias])
    assert outcome(read, value) == outcome(django_reads(target, alias), value)


@backends("sqlite")
def test_a_float_with_few_digits_skips_djangos_converter(alias, monkeypatch):
    connection = connections[alias]
    calls: list[Any] = []
    real = connection.ops.get_decimalfield_converter

    def counting(expression: Any) -> Callable[..., Any]:
        convert = real(expression)
        return lambda value, *rest: calls.append(value) or convert(value, *rest)

    monkeypatch.setattr(connection.ops, "get_decimalfield_converter", counting)
    read = sqlite_decimal_reader(field(12, 2), connection)
    assert [read(v) for v in (12.3, -0.5, 7, 0.0)] == ["12.30", "-0.50", "7.00", "0.00"]
    assert calls == []
    assert read(0.1 + 0.2) == "0.30"
    assert calls == [0.1 + 0.2]


def test_only_sqlite_decimal_columns_that_are_not_keys_are_read_raw(alias):
    tables = {t.label: t for t in plan_tables(alias).tables}
    product = tables["shop.Product"]
    read_raw = {product.fields[i].name for i in raw_readers(product, connections[alias])}
    if connections[alias].vendor == "sqlite":
        assert read_raw == {"price"}
    else:
        assert read_raw == set()
    alltypes = tables["edgecases.AllTypes"]  # decimal_places=10: str() may use an exponent
    assert raw_readers(alltypes, connections[alias]) == {}


def new_product(alias: str, slug: str) -> m.Product:
    return m.Product.objects.using(alias).create(name=slug, slug=slug, price=decimal.Decimal(1))


def set_price(alias: str, product: m.Product, stored: Any) -> None:
    write_by_hand(
        alias, "UPDATE shop_product SET price = %s WHERE id = %s", [stored, product.pk.hex]
    )


@backends("sqlite")
def test_a_backup_is_the_same_byte_for_byte_with_and_without_raw_reads(
    alias, backup_dir, monkeypatch
):
    seed_shop(20, using=alias)
    by_hand = [12.3, 12.345, 2.675, 0.1 + 0.2, -0.0, 0, 7, -12.005, 123456789.5, 1e-7, "12.5"]
    for n, stored in enumerate(by_hand):
        set_price(alias, new_product(alias, f"by-hand-{n}"), stored)
    raw = row_lines(backup_database(using=alias).path)
    monkeypatch.setattr("dbtools.backup.rows.raw_readers", lambda table, connection: {})
    through_django = row_lines(backup_database(using=alias).path)
    assert raw == through_django  # byte for byte
    prices = {orjson.loads(line)["price"] for line in raw["shop.Product"]}
    assert {"12.30", "0.30", "7.00", "123456789.50", "12.50"} <= prices


@backends("sqlite")
@pytest.mark.parametrize("stored", [10**13, 12345678901.5, "abc"])
def test_a_decimal_its_field_cannot_hold_names_its_row(alias, backup_dir, stored):
    product = new_product(alias, "p")
    set_price(alias, product, stored)
    with pytest.raises(
        BackupError,
        match=rf"shop.Product .*primary key {re.escape(repr(product.pk))}: price holds "
        rf"{re.escape(repr(stored))}, which is not a number its DecimalField\(max_digits=12, "
        r"decimal_places=2\) can hold\. Fix the value .*--exclude shop.Product",
    ):
        backup_database(using=alias)
    assert not list(backup_dir.glob("*.json"))
    assert not backup_dir.exists() or not any(backup_dir.iterdir())  # no hidden part or spool


@backends("sqlite")
def test_a_decimal_its_field_cannot_hold_is_not_quoted_when_sensitive(alias, backup_dir, settings):
    settings.DBTOOLS = {**settings.DBTOOLS, "SENSITIVE_FIELDS": ["shop.Product.price"]}
    set_price(alias, new_product(alias, "p"), "s3cret")
    with pytest.raises(BackupError) as caught:
        backup_database(using=alias)
    assert "s3cret" not in str(caught.value)
    assert ": price holds '…', which is not a number its DecimalField" in str(caught.value)
