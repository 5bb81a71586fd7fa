"""safemigrate's checks of what reaches the database other than through the
usual operations: SeparateDatabaseAndState's database operations, and SQL of
RunSQL read for data loss, renames, rewrites and the locks a transaction holds.

Each test checks a migration made in the test (probe()) on lintlab's tables.
"""

from __future__ import annotations

import pytest
from django.db import connections

from tests import test_migration_checks
from tests.conftest import backends
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


def run_sql(sql: str):
    from django.db import migrations

    return migrations.RunSQL(sql, reverse_sql=migrations.RunSQL.noop)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("DELETE FROM lintlab_box", [(0, "DBT306")]),
        ("DELETE FROM lintlab_box WHERE id = 0", []),
        ("CREATE TABLE lintlab_tally (id int); DELETE FROM lintlab_tally", []),
    ],
    ids=["every-row", "where", "scratch"],
)
def test_a_delete_without_where_is_data_loss(alias, lintlab, sql, expected):
    """SQLite has no TRUNCATE: DELETE without WHERE is how its SQL empties a table."""
    with_rows(lintlab)
    raised, _migration = probe(alias, run_sql(sql))
    assert codes(raised) == expected
    if expected:
        assert raised[0][2] == (
            "The SQL deletes every row of lintlab_box (DELETE without WHERE); they are afterwards "
            "only in the backup."
        )


@pytest.mark.parametrize(
    "sql",
    ["ALTER TABLE lintlab_box DROP COLUMN note", "ALTER TABLE lintlab_box DROP note"],
    ids=["column", "without-column-keyword"],
)
def test_a_column_dropped_by_sql_is_one_the_old_code_still_selects(alias, lintlab, sql):
    """As after a RemoveField (DBT403), unless the models no longer have it: removed
    from the state a release earlier, which is DBT403's fix."""
    from django.db import migrations

    with_rows(lintlab)
    raised, _migration = probe(alias, run_sql(sql), deploy="migrate-first")
    assert raised == [
        (0, "DBT304", "The SQL drops or truncates; what it removes is afterwards only in the backup."),
        (0, "DBT403", "The old code selects box.note in every query on box: they all fail from this "
                      "migration until the new code runs."),
    ]  # fmt: skip
    removed_first = migrations.SeparateDatabaseAndState(
        state_operations=[migrations.RemoveField("box", "note")]
    )
    raised, _migration = probe(alias, removed_first, run_sql(sql), deploy="migrate-first")
    assert codes(raised) == [(1, "DBT304")]


DIALECT_RENAMES = {  # a rename in the dialect's own SQL, and a statement like it that renames nothing
    "mysql": (
        "ALTER TABLE lintlab_box CHANGE note remark varchar(30) NOT NULL",  # CHANGE old new type
        "ALTER TABLE lintlab_box CHANGE note note varchar(30) NOT NULL",
    ),
    "postgresql": (
        "ALTER TABLE lintlab_box SET SCHEMA elsewhere",  # the code's unqualified name finds nothing
        "ALTER TABLE lintlab_box SET (fillfactor = 90)",
    ),
}


@backends("mariadb", "postgresql")
def test_a_rename_in_a_dialects_own_sql_is_one_for_the_running_code(alias, lintlab):
    with_rows(lintlab)
    renaming, not_renaming = (run_sql(sql) for sql in DIALECT_RENAMES[connections[alias].vendor])
    raised, _migration = probe(alias, renaming, deploy="migrate-first")
    assert codes(raised) == [(0, "DBT402")]
    assert probe(alias, renaming, deploy="downtime")[0] == []
    assert probe(alias, not_renaming, deploy="migrate-first")[0] == []


@backends("postgresql")
def test_drop_type_cascade_drops_the_columns_of_that_type(alias, lintlab):
    with_rows(lintlab)
    with connections[alias].cursor() as cursor:
        cursor.execute("CREATE TYPE lintlab_mood AS ENUM ('calm', 'busy')")
        cursor.execute("CREATE DOMAIN lintlab_moods AS lintlab_mood[]")
        cursor.execute("CREATE TYPE lintlab_unused AS ENUM ('x')")
        cursor.execute(
            "ALTER TABLE lintlab_box ADD COLUMN mood lintlab_mood, ADD COLUMN moods lintlab_moods"
        )
    try:
        raised, _migration = probe(alias, run_sql("DROP TYPE lintlab_mood CASCADE"))
        assert raised == [
            (0, "DBT307", "DROP TYPE lintlab_mood CASCADE drops the columns of that type with their data: "
                          "lintlab_box.mood, lintlab_box.moods."),
        ]  # fmt: skip
        assert probe(alias, run_sql("DROP TYPE lintlab_mood"))[0] == []  # fails, losing nothing
        assert probe(alias, run_sql("DROP TYPE lintlab_unused CASCADE"))[0] == []
    finally:
        with connections[alias].cursor() as cursor:
            cursor.execute("ALTER TABLE lintlab_box DROP COLUMN mood, DROP COLUMN moods")
            cursor.execute("DROP DOMAIN lintlab_moods")
            cursor.execute("DROP TYPE lintlab_mood, lintlab_unused")


@backends("postgresql")
@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("ALTER TABLE lintlab_box ADD COLUMN token uuid DEFAULT gen_random_uuid()",
         "Adding token rewrites lintlab_box (2 rows) and its indexes under an ACCESS EXCLUSIVE lock (reads and "
         "writes wait): its default calls gen_random_uuid(), which is volatile: each row gets its own value."),
        ("ALTER TABLE lintlab_box ADD COLUMN luck float8 DEFAULT random()", "DBT208"),
        ("ALTER TABLE lintlab_box ADD COLUMN at timestamptz DEFAULT clock_timestamp()", "DBT208"),
        ("ALTER TABLE lintlab_box ADD COLUMN twice int GENERATED ALWAYS AS (count * 2) STORED",
         "Adding twice rewrites lintlab_box (2 rows) and its indexes under an ACCESS EXCLUSIVE lock (reads and "
         "writes wait): a stored generated column is computed and written for every row."),
        ("ALTER TABLE lintlab_box ADD COLUMN seq bigserial", "DBT208"),
        ("ALTER TABLE lintlab_box ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY", "DBT208"),
        ("ALTER TABLE lintlab_box ALTER COLUMN count TYPE integer USING count + 1",
         "count to integer USING count + 1 computes every value again: it rewrites lintlab_box (2 rows) and its "
         "indexes under an ACCESS EXCLUSIVE lock (reads and writes wait)."),
        ("ALTER TABLE lintlab_box ALTER COLUMN count TYPE bigint USING count::bigint", "DBT205"),
        ("ALTER TABLE lintlab_box ADD COLUMN at timestamptz DEFAULT now()", None),
        ("ALTER TABLE lintlab_box ADD COLUMN zero int NOT NULL DEFAULT 0", None),
        ("ALTER TABLE lintlab_box ALTER COLUMN note TYPE varchar(40) USING note", None),
        ("ALTER TABLE lintlab_box ALTER COLUMN note TYPE varchar(40) USING note::varchar(40)", None),
    ],
    ids=["gen-random-uuid", "random", "clock-timestamp", "stored-generated", "serial", "identity",
         "using", "using-cast-rewrites", "now", "constant", "using-the-column", "using-a-widening-cast"],
)  # fmt: skip
def test_what_rewrites_a_postgresql_table_is_seen(alias, lintlab, sql, expected):
    """A value computed per row rewrites the table; a constant or stable default
    (PostgreSQL 11+) and a USING that only reads the column do not."""
    with_rows(lintlab)
    raised, _migration = probe(alias, run_sql(sql))
    if expected is None:
        assert raised == []
    elif expected.startswith("DBT"):
        assert codes(raised) == [(0, expected)]
    else:
        assert [message for _index, _code, message in raised] == [expected]
        assert raised[0][1] == ("DBT205" if "USING" in expected else "DBT208")


@backends("postgresql")
@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("ALTER TABLE lintlab_box ADD CONSTRAINT lintlab_pk PRIMARY KEY (count)",
         ["The PRIMARY KEY constraint builds its index on lintlab_box (2 rows) under an ACCESS EXCLUSIVE lock "
          "(reads and writes wait)."]),
        ("ALTER TABLE lintlab_box ADD COLUMN code int UNIQUE",
         ["The UNIQUE constraint builds its index on lintlab_box (2 rows) under an ACCESS EXCLUSIVE lock "
          "(reads and writes wait)."]),
        ("ALTER TABLE lintlab_box ADD CONSTRAINT lintlab_pk PRIMARY KEY USING INDEX lintlab_count_idx", []),
        ("ALTER TABLE lintlab_box ADD CONSTRAINT lintlab_u UNIQUE USING INDEX lintlab_count_idx", []),
    ],
    ids=["primary-key", "inline-unique", "primary-key-using-index", "unique-using-index"],
)  # fmt: skip
def test_a_primary_key_or_inline_unique_builds_its_index_under_the_lock(
    alias, lintlab, sql, expected
):
    with_rows(lintlab)
    raised, _migration = probe(alias, run_sql(sql))
    assert [message for _index, _code, message in raised] == expected
    assert {code for _index, code, _message in raised} <= {"DBT206"}


@backends("postgresql")
@pytest.mark.parametrize(
    ("add", "code", "lock"),
    [
        ("ADD CONSTRAINT lintlab_c CHECK (count >= 0) NOT VALID", "DBT204", "ACCESS EXCLUSIVE"),
        ("ADD CONSTRAINT lintlab_c FOREIGN KEY (count) REFERENCES lintlab_shelf (id) NOT VALID", "DBT202",
         "SHARE ROW EXCLUSIVE"),
    ],
    ids=["check", "foreign-key"],
)  # fmt: skip
def test_validating_in_the_transaction_that_added_not_valid_holds_its_lock(
    alias, lintlab, add, code, lock
):
    with_rows(lintlab)
    added = run_sql(f"ALTER TABLE lintlab_box {add}")
    validated = run_sql("ALTER TABLE lintlab_box VALIDATE CONSTRAINT lintlab_c")
    raised, _migration = probe(alias, added, validated)
    assert codes(raised) == [(1, code)]
    assert raised[0][2].startswith(
        f"VALIDATE CONSTRAINT lintlab_c scans lintlab_box (2 rows) in the transaction that added it NOT "
        f"VALID: the {lock} lock that ALTER TABLE lintlab_box {add[:40]}"
    )
    one_statement = run_sql(
        f"ALTER TABLE lintlab_box {add}; ALTER TABLE lintlab_box VALIDATE CONSTRAINT lintlab_c"
    )
    assert codes(probe(alias, one_statement)[0]) == [(0, code)]
    # Each statement commits on its own: the validation takes only its own weaker lock.
    assert probe(alias, added, validated, atomic=False)[0] == []


@backends("postgresql")
@pytest.mark.parametrize(
    ("sql", "held"),
    [
        ("LOCK TABLE lintlab_box", "LOCK TABLE lintlab_box"),
        ("ALTER TABLE lintlab_box RENAME COLUMN note TO remark",
         "ALTER TABLE lintlab_box RENAME COLUMN note TO remark"),
        ("LOCK TABLE lintlab_box IN SHARE MODE", None),
        ("ALTER TABLE lintlab_box SET (autovacuum_enabled = false, toast.autovacuum_enabled = false)", None),
        ("ALTER TABLE lintlab_box ALTER COLUMN note SET STATISTICS 500", None),
    ],
    ids=["lock-table", "rename", "lock-in-share-mode", "autovacuum-settings", "statistics"],
)  # fmt: skip
def test_the_locks_a_transaction_holds_after_rename_or_lock_table(alias, lintlab, sql, held):
    """RENAME and LOCK TABLE take ACCESS EXCLUSIVE to the commit; SET of autovacuum
    parameters or statistics takes SHARE UPDATE EXCLUSIVE, which reads pass."""
    from django.db import models
    from django.db.migrations import AddIndex

    with_rows(lintlab)
    index = AddIndex("box", models.Index(fields=["count"], name="lintlab_count_idx"))
    raised, _migration = probe(alias, run_sql(sql), index)
    assert [(i, c) for i, c in codes(raised) if c != "DBT201"] == []
    (message,) = [message for _index, code, message in raised if code == "DBT201"]
    if held:
        assert message == (
            f"The index build on lintlab_box (2 rows) runs under the ACCESS EXCLUSIVE lock that {held} took "
            f"earlier in this migration: reads and writes wait until it commits."
        )
    else:
        assert message == (
            "The index build blocks writes to lintlab_box (2 rows) until it is done (SHARE lock)."
        )


@backends("postgresql")
@pytest.mark.parametrize("where", ["plan", "same-sql", "database"])
def test_set_not_null_over_a_validated_check_skips_its_scan(alias, lintlab, where):
    """PostgreSQL 12+ uses a validated CHECK (column IS NOT NULL) and does not scan."""
    lintlab.migrate(LAST)
    add = "ALTER TABLE lintlab_box ADD CONSTRAINT lintlab_nn CHECK (shelf_id IS NOT NULL) NOT VALID"
    validate = "ALTER TABLE lintlab_box VALIDATE CONSTRAINT lintlab_nn"
    set_not_null = run_sql("ALTER TABLE lintlab_box ALTER COLUMN shelf_id SET NOT NULL")

    def dbt203(*operations) -> bool:
        raised, _migration = probe(alias, *operations, atomic=False)
        return "DBT203" in [code for _index, code, _message in raised]

    if where == "plan":
        assert dbt203(run_sql(add), run_sql(validate), set_not_null) is False
        assert dbt203(run_sql(add), set_not_null) is True  # NOT VALID proves nothing yet
    elif where == "same-sql":
        assert dbt203(run_sql(f"{add}; {validate}; {set_not_null.sql}")) is False
        assert dbt203(run_sql(f"{add}; {validate}; ALTER TABLE lintlab_box DROP CONSTRAINT lintlab_nn; "
                              f"{set_not_null.sql}")) is True  # fmt: skip
    else:
        with connections[alias].cursor() as cursor:
            cursor.execute(add)
        try:
            assert dbt203(set_not_null) is True
            with connections[alias].cursor() as cursor:
                cursor.execute(validate)
            assert dbt203(set_not_null) is False
        finally:
            with connections[alias].cursor() as cursor:
                cursor.execute("ALTER TABLE lintlab_box DROP CONSTRAINT lintlab_nn")
