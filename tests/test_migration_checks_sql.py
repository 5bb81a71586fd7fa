"""safemigrate's checks of what reaches the database other than through the
usual operations: SeparateDatabaseAndState's database operations, and SQL of
RunSQL read for data loss, renames, rewrites and the locks a transaction holds.

Each test checks a migration made in the test (probe()) on lintlab's tables.
"""

from __future__ import annotations

import pytest
from django.db import connections

from tests import test_migration_checks
from tests.test_migration_checks import LAST, probe

lintlab = test_migration_checks.lintlab  # the fixture, shared


def codes(raised: list[tuple[int, str, str]]) -> list[tuple[int, str]]:
    return [(index, code) for index, code, _message in raised]


def with_rows(lintlab) -> None:
    lintlab.migrate(LAST)
    lintlab.add(title="a", note="n", flag=False, size="1", count=1, weight=1)
    lintlab.add(title="b", note="n", flag=False, size="1", count=1, weight=1)


def test_the_database_operations_of_separate_database_and_state_are_checked(alias, lintlab):
    """They run as they are: a column they drop loses its data, and the old code
    still selects it, as with a plain RemoveField."""
    from django.db import migrations, models

    with_rows(lintlab)
    drop = migrations.SeparateDatabaseAndState(
        database_operations=[migrations.RemoveField("box", "note")],
        state_operations=[migrations.RemoveField("box", "note")],
    )
    raised, _migration = probe(alias, drop, deploy="migrate-first")
    assert codes(raised) == [(0, "DBT104"), (0, "DBT403")]
    assert raised[0][2] == "The column box.note and its data in 2 rows are dropped."

    # Each database operation sees the state the one before it leaves.
    add = migrations.SeparateDatabaseAndState(
        database_operations=[
            migrations.AddField("box", "extra", models.IntegerField(null=True)),
            migrations.AlterField("box", "extra", models.IntegerField()),
        ],
    )
    raised, _migration = probe(alias, add)
    postgresql = connections[alias].vendor == "postgresql"
    assert codes(raised) == [(0, "DBT106")] + ([(0, "DBT203")] if postgresql else [])
    assert raised[0][2] == (
        "box.extra becomes required, but 2 rows hold NULL and the migration fills nothing in: it "
        "will fail."
    )


@pytest.mark.parametrize("deploy", ["migrate-first", "downtime"])
def test_the_state_operations_of_separate_database_and_state_are_no_finding(
    alias,
    lintlab,
    deploy,
):
    """They change no schema: removing the field from the model one release before
    the column goes (the fix of DBT403) is safe."""
    from django.db import migrations

    with_rows(lintlab)
    state_only = migrations.SeparateDatabaseAndState(
        state_operations=[migrations.RemoveField("box", "note")],
        database_operations=[migrations.RunSQL("SELECT 1", migrations.RunSQL.noop)],
    )
    raised, _migration = probe(alias, state_only, deploy=deploy)
    assert raised == []
