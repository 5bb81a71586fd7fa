"""Property-based tests (Hypothesis): generated rows round-trip exactly through
backupdb and restoredb --replace on every backend, and mutated backup files
(re-signed, so the checksums pass) fail with a clean error and change nothing.

The example counts are kept small for CI; run them longer with
    DBTOOLS_HYPOTHESIS_EXAMPLES=500 python3 dev.py test tests/test_properties.py
"""

from __future__ import annotations

import datetime
import json
import os
import zoneinfo
from decimal import Decimal

import pytest
from django.db import connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbtools.backup import backup_database
from dbtools.exceptions import DbtoolsError
from dbtools.restore import prepare_restore, restore_database
from tests.conftest import ci_backends
from tests.edgecases import models as e
from tests.helpers import comparable_tables, database_contents, resign

EXAMPLES = int(os.environ.get("DBTOOLS_HYPOTHESIS_EXAMPLES", "12"))
PROPERTY_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=os.environ.get("CI") == "true",  # CI runs the same examples every time
)
ZONES = [
    zoneinfo.ZoneInfo(name)
    for name in ("UTC", "Europe/London", "America/New_York", "Asia/Kathmandu")
]


def text(max_size: int, vendor: str) -> st.SearchStrategy[str]:
    # No lone surrogates: no driver can send them. No NUL on PostgreSQL,
    # whose text cannot hold it (restoredb reports such a row).
    excluded = ["Cs"]
    alphabet = st.characters(
        exclude_categories=excluded, exclude_characters="\x00" if vendor == "postgresql" else ""
    )
    return st.text(alphabet, max_size=max_size)


def json_values(vendor: str) -> st.SearchStrategy[object]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**80), max_value=2**80)
        | st.floats(allow_nan=False, allow_infinity=False)
        | text(20, "postgresql")  # jsonb cannot hold \u0000 either
    )
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(text(8, "postgresql"), children, max_size=4)
        ),
        max_leaves=12,
    )


def decimals(vendor: str) -> st.SearchStrategy[Decimal]:
    # max_digits=30, decimal_places=10; SQLite keeps decimals as floating point,
    # so 15 significant digits at most there (restoredb refuses more).
    digits = 15 if vendor == "sqlite" else 30
    # Spelled out: arithmetic in the default 28-digit context rounds
    # 10**20 - 1e-10 up to 10**20, which the column cannot hold.
    limit = Decimal("9" * (digits - 10) + "." + "9" * 10)
    return st.decimals(min_value=-limit, max_value=limit, places=10, allow_nan=False)


def durations(vendor: str) -> st.SearchStrategy[datetime.timedelta]:
    if vendor == "postgresql":
        return st.timedeltas()  # interval holds timedelta.min to timedelta.max
    bound = datetime.timedelta(microseconds=2**63 - 1)  # a bigint of microseconds
    return st.timedeltas(min_value=-bound, max_value=bound)


def all_types_rows(vendor: str) -> st.SearchStrategy[list[dict[str, object]]]:
    floats = st.floats(
        allow_nan=vendor == "postgresql",  # SQLite stores NaN as NULL; MariaDB refuses it
        allow_infinity=vendor != "mysql",
    )
    field = {
        "big_integer": st.integers(-(2**63), 2**63 - 1),
        "binary": st.binary(max_size=64),
        "boolean": st.booleans(),
        "char": text(100, vendor),
        "date": st.dates(datetime.date(1000, 1, 1), datetime.date(9999, 12, 31)),
        "date_time": st.datetimes(
            datetime.datetime(1900, 1, 1),
            datetime.datetime(2200, 1, 1),
            timezones=st.sampled_from(ZONES),
        ),
        "decimal": decimals(vendor),
        "duration": durations(vendor),
        "float": floats,
        "generic_ip": st.ip_addresses().map(str),
        "integer": st.integers(-(2**31), 2**31 - 1),
        "json": json_values(vendor),
        "positive_big_integer": st.integers(0, 2**63 - 1),
        "positive_integer": st.integers(0, 2**31 - 1),
        "positive_small_integer": st.integers(0, 32767),
        "small_integer": st.integers(-32768, 32767),
        "text": text(200, vendor),
        "time": st.times(),
        # MariaDB's UUID type refuses some bit patterns Django would send
        "uuid": st.uuids(version=4) if vendor == "mysql" else st.uuids(),
    }
    row = st.fixed_dictionaries({}, optional={name: s | st.none() for name, s in field.items()})
    return st.lists(row, min_size=1, max_size=4)


def restore_replace(path, alias):
    return restore_database(
        prepare_restore(path, using=alias, only=["edgecases.AllTypes"]), mode="replace"
    )


@pytest.mark.slow
def test_generated_rows_round_trip_exactly(alias, backup_dir):
    vendor = connections[alias].vendor

    @PROPERTY_SETTINGS
    @given(rows=all_types_rows(vendor))
    def round_trip(rows):
        e.AllTypes.objects.using(alias).all().delete()
        for row in rows:
            e.AllTypes.objects.using(alias).create(**row)
        before = comparable_tables(database_contents(alias, ["edgecases.AllTypes"]))
        backup = backup_database(using=alias, only=["edgecases.AllTypes"]).path
        e.AllTypes.objects.using(alias).update(
            char="changed", json=None, duration=None, binary=None, float=None
        )
        restore_replace(backup, alias)
        assert comparable_tables(database_contents(alias, ["edgecases.AllTypes"])) == before

    round_trip()


def mutations() -> st.SearchStrategy[tuple[str, object]]:
    """A column of AllTypes and any JSON value to put in it."""
    columns = [f.name for f in e.AllTypes._meta.concrete_fields]
    anything = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=5), children, max_size=3)
        ),
        max_leaves=6,
    )
    return st.tuples(st.sampled_from(columns), anything)


@pytest.mark.slow
@ci_backends("sqlite")  # refusing a file is the archive reader's; test_hostile covers each backend
def test_mutated_files_fail_cleanly_and_change_nothing(alias, backup_dir):
    """Whatever a row holds, the restore either loads it or stops with one of
    dbtools' errors, and then the database is exactly as it was."""
    e.AllTypes.objects.using(alias).create(char="a", integer=1, json={"k": [1, 2]})
    e.AllTypes.objects.using(alias).create(char="b", date=datetime.date(2000, 1, 1))
    backup = backup_database(using=alias, only=["edgecases.AllTypes"]).path
    lines = backup.read_text().split("\n")
    first_row = next(i for i, line in enumerate(lines) if line.startswith('{"id":'))
    before = comparable_tables(database_contents(alias))

    @PROPERTY_SETTINGS
    @given(mutation=mutations(), raw_edit=st.booleans(), cut=st.integers(0, 400))
    def mutate(mutation, raw_edit, cut):
        column, value = mutation
        edited = list(lines)
        if raw_edit:  # any text at all in the row's place
            edited[first_row] = edited[first_row][:cut] + json.dumps(value)[:40]
        else:
            row = json.loads(edited[first_row])
            row[column] = value
            edited[first_row] = json.dumps(row, separators=(",", ":"))
        bad = backup.with_name("mutated.json")
        bad.write_text("\n".join(edited))
        resign(bad)
        try:
            restore_replace(bad, alias)
        except DbtoolsError as exc:
            assert "\n" not in str(exc) and str(exc).strip()
            assert comparable_tables(database_contents(alias)) == before
        else:  # a mutation that is still a valid row: put the database back
            restore_replace(backup, alias)

    mutate()
